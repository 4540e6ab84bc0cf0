"""`galseg models list` — the models a segmenter can use: the built-ins, then the user's."""
from __future__ import annotations

import argparse
import json

DESCRIPTION = """\
List the models that `galseg segment METHOD --model NAME` and the widgets' model lists accept:
the built-in models that ship with the plugin (used when no --model is given), then the models of
your models folder ($GALSEG_MODELS, or the user data folder; `galseg jobs register` adds to it).

examples:
  galseg models list
  galseg models list --method unet --json
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the built-in models and those of your models folder",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("list",), help="list: show the models")
    p.add_argument("--method", default=None, help="only the models of this method (unet, forest, ...)")
    p.add_argument("--root", default=None, help="models folder to list (default: $GALSEG_MODELS or the user data folder)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=run)


def rows(method: str | None = None, root: str | None = None) -> list[dict]:
    """One row per model, built-ins first: name, method, where it lives, its range and scores."""
    from ..builtin_models import DEFAULTS, list_builtins
    from ..model_registry import list_models

    out = []
    for model in list_builtins(method):
        scores = model.card.get("scores_unseen") or {}
        out.append({"name": model.name, "method": model.method, "source": "built-in",
                    "default": DEFAULTS.get(model.method) == model.name, "path": str(model.path),
                    "valid_range": model.valid_range, "iou_unseen": (scores.get("mean") or {}).get("iou")})
    for model in list_models(root, method):
        out.append({"name": model.name, "method": model.method, "source": "models folder", "default": False,
                    "path": str(model.path), "valid_range": model.provenance.get("valid_range") or {},
                    "iou_unseen": None, "val_iou": model.val_iou})
    return out


def run(args: argparse.Namespace) -> int:
    from ..model_registry import models_root

    found = rows(args.method, args.root)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    if not found:
        print(f"no models{f' of {args.method}' if args.method else ''} (models folder: {models_root(args.root)})")
        return 0
    width = max(len(r["name"]) for r in found)
    for r in found:
        extra = []
        if r["default"]:
            extra.append("default")
        if r["valid_range"].get("psf_fwhm_px"):
            lo, hi = r["valid_range"]["psf_fwhm_px"]
            extra.append(f"PSF FWHM {lo:g}–{hi:g} px")
        if r.get("iou_unseen") is not None:
            extra.append(f"IoU {r['iou_unseen']:.3f} on unseen fields")
        if r.get("val_iou") is not None:
            extra.append(f"val IoU {r['val_iou']:.3f}")
        print(f"{r['name']:<{width}}  {r['method']:<9} {r['source']:<13} {', '.join(extra)}")
    print(f"(models folder: {models_root(args.root)})")
    return 0
