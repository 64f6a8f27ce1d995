"""A published weight file in its authors' layout -> the state dict of our runtime network (train.zoo.arch).

Files are read with safetensors or torch.load(weights_only=True) only: a pickle that holds code or objects is
refused, never run. Every mismatch (not a checkpoint, a truncated download, keys of another model, wrong shapes)
is a LayoutError naming the file and what does not match, on one line.
"""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import safetensors.torch
import torch
from safetensors import SafetensorError

from dfd.errors import ToolkitError
from train.zoo.entries import Layout

MAX_LISTED = 3  # keys named in a message


class LayoutError(ToolkitError, ValueError):
    """A file that is not the named entry's (exit 1)."""


def _few(keys) -> str:
    """The first keys (a list: in the file's order; a set: sorted), and how many more."""
    keys = keys if isinstance(keys, list) else sorted(keys)
    more = f" and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else ""
    return ", ".join(keys[:MAX_LISTED]) + more


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000


def read_file(path: str | Path) -> dict:
    """The file's top-level object (safetensors: its tensors) without running any code it may hold."""
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"{path}: no such file")
    try:
        if _is_safetensors(path):
            return safetensors.torch.load_file(str(path), device="cpu")
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unpickling failed"
        raise LayoutError(f"{path}: refused: it is not plain weights (a weights-only load stops at: "
                          f"{first[:160]})") from None
    except (SafetensorError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError,
            TypeError, AttributeError, IndexError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
        raise LayoutError(f"{path}: not a complete checkpoint (truncated download?): {first[:160]}") from None
    if not isinstance(data, dict):
        raise LayoutError(f"{path}: holds a {type(data).__name__}, not a dict of weights")
    return data


def unwrap(path: Path, data: dict, layout: Layout) -> dict[str, torch.Tensor]:
    """The state dict inside the file's dict (the layout's wrapper keys), tensors only, prefixes handled."""
    for key in layout.wrappers:
        if isinstance(data.get(key), dict):
            data = data[key]
            break
    state = {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not state:
        wrappers = " or ".join(repr(w) for w in layout.wrappers) or "none"
        raise LayoutError(f"{path}: no weights found (top-level keys {_few(set(map(str, data)))}; expected "
                          f"{layout.description}, wrapper key {wrappers})")
    for prefix in layout.strip:
        state = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
    if layout.require:
        outside = [k for k in state if not k.startswith(layout.require)]
        if outside:
            raise LayoutError(f"{path}: keys not under {layout.require!r} ({_few(outside)}): not "
                              f"{layout.description}")
        state = {k[len(layout.require):]: v for k, v in state.items()}
    return {k: v for k, v in state.items() if not any(re.search(p, k) for p in layout.drop)}


def split(path: Path, state: dict, layout: Layout) -> tuple[dict, dict]:
    """(head, body): each without its prefix; a key in neither is refused."""
    head, body, other = {}, {}, []
    for key, value in state.items():
        prefix = next((p for p in layout.head if key.startswith(p)), None)
        if prefix is not None:
            head[key[len(prefix):]] = value
        elif key.startswith(layout.body):
            body[key[len(layout.body):]] = value
        else:
            other.append(key)
    if other:
        raise LayoutError(f"{path}: unexpected keys {_few(other)}: not {layout.description}")
    if not head:
        raise LayoutError(f"{path}: no head ({' or '.join(layout.head)} keys): not {layout.description}")
    return head, body


# efficientnet_pytorch MBConvBlock -> timm: (DepthwiseSeparableConv without expansion, InvertedResidual)
_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand",
       "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
       "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}


def efficientnet_pytorch(state: dict, stages: list[int]) -> dict:
    """efficientnet_pytorch names -> timm's: the flat block index to (stage, index), per-block layer names."""
    where = [(s, j) for s, n in enumerate(stages) for j in range(n)]
    expands = {int(k.split(".")[1]) for k in state if k.startswith("_blocks.") and "._expand_conv." in k}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks" and len(parts) >= 4 and parts[1].isdigit() and int(parts[1]) < len(where):
            i = int(parts[1])
            names = _IR if i in expands else _DS
            stage, j = where[i]
            layer = names.get(parts[2], parts[2])
            out[f"blocks.{stage}.{j}.{layer}.{'.'.join(parts[3:])}"] = value
        else:
            out[".".join([_TOP.get(parts[0], parts[0]), *parts[1:]])] = value
    return out


_CLIP_LAYER = {"layer_norm1": "norm1", "layer_norm2": "norm2", "self_attn.out_proj": "attn.proj",
               "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}


def hf_clip(state: dict) -> dict:
    """transformers' CLIPVisionTransformer names -> timm's VisionTransformer: q, k, v concatenated into qkv."""
    out, qkv = {}, {}
    for key, value in state.items():
        if key == "embeddings.class_embedding":
            out["cls_token"] = value.reshape(1, 1, -1)
        elif key == "embeddings.position_embedding.weight":
            out["pos_embed"] = value.unsqueeze(0)
        elif key.startswith("embeddings.patch_embedding."):
            out["patch_embed.proj." + key.rsplit(".", 1)[1]] = value
        elif key.startswith(("pre_layrnorm.", "post_layernorm.")):
            out[("norm_pre." if key.startswith("pre") else "norm.") + key.rsplit(".", 1)[1]] = value
        elif m := re.fullmatch(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", key):
            qkv.setdefault((m[1], m[3]), {})[m[2]] = value
        elif m := re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", key):
            out[f"blocks.{m[1]}.{_CLIP_LAYER.get(m[2], m[2])}.{m[3]}"] = value
        else:
            out[key] = value  # left for the key check to name
    for (layer, kind), parts in qkv.items():
        if set(parts) == {"q", "k", "v"}:
            out[f"blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
        else:
            out.update({f"encoder.layers.{layer}.self_attn.{p}_proj.{kind}": v for p, v in parts.items()})
    return out


def svd_merge(state: dict) -> dict:
    """Effort's SVDResidualLinear (weight_main + U_residual diag(S_residual) V_residual) -> a plain weight."""
    out = dict(state)
    for key in [k for k in state if k.endswith(".weight_main")]:
        stem = key[: -len("weight_main")]
        parts = [stem + p for p in ("U_residual", "S_residual", "V_residual")]
        weight = out.pop(key)
        if all(p in out for p in parts):
            u, s, v = (out.pop(p) for p in parts)
            weight = weight + u @ torch.diag(s) @ v  # the authors' forward's own arithmetic, in the file's dtype
        out[stem + "weight"] = weight
    return out


def convert(path: Path, data: dict, layout: Layout, stages: list[int]) -> dict:
    """The file's dict -> our ZooNet state dict ("net." + timm names, "head.")."""
    head, body = split(path, unwrap(path, data, layout), layout)
    steps = {"efficientnet_pytorch": lambda s: efficientnet_pytorch(s, stages), "hf_clip": hf_clip,
             "svd_merge": svd_merge}
    for step in layout.convert:
        try:
            body = steps[step](body)
        except (RuntimeError, ValueError, IndexError) as err:  # tensors that cannot be joined: not this layout
            first = str(err).strip().splitlines()[0][:160] if str(err).strip() else err.__class__.__name__
            raise LayoutError(f"{path}: cannot convert ({step}): {first}: not {layout.description}") from None
    return {**{"net." + k: v for k, v in body.items()}, **{"head." + k: v for k, v in head.items()}}


def check_fits(path: Path, state: dict, expected: dict, description: str) -> None:
    """Refuse a state dict whose keys or shapes are not the runtime network's."""
    missing = set(expected) - set(state)
    unexpected = set(state) - set(expected)
    if missing or unexpected:
        what = "; ".join(x for x in (f"missing {_few(missing)}" if missing else "",
                                     f"unexpected {_few(unexpected)}" if unexpected else "") if x)
        raise LayoutError(f"{path}: keys do not match {description} ({what})")
    wrong = [f"{k} {tuple(state[k].shape)} instead of {tuple(expected[k].shape)}" for k in sorted(expected)
             if tuple(state[k].shape) != tuple(expected[k].shape)]
    if wrong:
        more = f" and {len(wrong) - 2} more" if len(wrong) > 2 else ""
        raise LayoutError(f"{path}: wrong shapes for {description}: {', '.join(wrong[:2])}{more}")
