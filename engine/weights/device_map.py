"""Carry out a placement: which block lives on which device, and routed experts kept in host
memory (engine.offload runs them there). The arithmetic of which plan fits is
engine.weights.memplan.

A device map sends units to devices: 'embed', 'head' (hc_head, norm, head), 'layers.i',
'mtp.i', and 'layers.i.ffn.experts' (routed experts, when they live apart from their block).
The `device_map` setting / `--device-map` flag reads:

  cpu (or nothing)         everything on the CPU
  cuda:0                   everything on one device
  cuda:0,cuda:1            blocks over the devices in order, split by their stored bytes
  layers.0-20=cuda:0,layers.21-42=cuda:1,mtp.0=cuda:1[,experts=cpu]
                           explicit units; `experts=cpu` keeps every block's routed experts
                           in host memory; embed goes with the first block, head with the last
  cuda:0,experts=cpu       devices and units mixed: blocks not named go over the devices
  auto                     the first plan of engine.weights.memplan that fits this machine's GPUs
                           (single GPU, several, experts in host memory); the CPU without CUDA
"""

from __future__ import annotations

import torch

from engine.weights import memplan

EXPERTS = ".ffn.experts"


def blocks(model) -> list[str]:
    """Block units in execution order: layers.0.., then mtp.0.."""
    return ([f"layers.{i}" for i in range(len(model.layers))]
            + [f"mtp.{i}" for i in range(len(model.mtp))])


def weights_of(model) -> memplan.Weights:
    """Stored bytes by unit, from the parameters (works on the meta device)."""
    w = memplan.Weights()
    for name, p in model.named_parameters():
        nbytes = p.numel() * p.element_size()
        parts = name.split(".")
        if parts[0] not in ("layers", "mtp"):
            w.other += nbytes
            continue
        unit = ".".join(parts[:2])
        table = w.experts if f"{unit}{EXPERTS}." in name else w.blocks
        table[unit] = table.get(unit, 0) + nbytes
    return w


def resolve(spec: str | dict | None, model) -> dict[str, str]:
    """The full map (every unit named) for `spec` on `model`; ValueError saying what is wrong
    with a spec that cannot be read or names a device this machine does not have."""
    if isinstance(spec, dict):
        dmap = _complete(dict(spec), model)
    else:
        spec = (spec or "cpu").strip()
        if spec == "auto":
            dmap = _auto(model)
        elif "=" in spec:
            dmap = _complete(_explicit(spec, model), model)
        else:
            dmap = _split([d.strip() for d in spec.split(",") if d.strip()], model)
    for device in sorted(set(dmap.values())):
        check_device(device)
    return dmap


def _explicit(spec: str, model) -> dict[str, str]:
    """Named units, `experts=DEV`, and bare devices that take the blocks left unnamed."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    named = dict(p.partition("=")[::2] for p in parts if "=" in p)
    named = {u.strip(): d.strip() for u, d in named.items()}
    experts = named.pop("experts", None)
    out = {u: named.pop(u) for u in ("embed", "head") if u in named}
    out.update(memplan.parse_device_map(",".join(f"{u}={d}" for u, d in named.items())))
    bare = [p for p in parts if "=" not in p]  # 'cuda:0,experts=cpu': the rest over these
    if bare:
        for unit, device in _split(bare, model).items():
            out.setdefault(unit, device)
    if experts:
        out.update({f"{u}{EXPERTS}": experts for u in blocks(model)})
    return out


def _complete(dmap: dict[str, str], model) -> dict[str, str]:
    """Every block named (else ValueError listing the missing ones); embed/head defaulted."""
    units = blocks(model)
    unknown = sorted(set(dmap) - set(units) - {"embed", "head"}
                     - {f"{u}{EXPERTS}" for u in units})
    if unknown:
        raise ValueError(f"--device-map: this model has no {', '.join(unknown)} (it has "
                         f"layers.0-{len(model.layers) - 1}"
                         + (f" and mtp.0-{len(model.mtp) - 1}" if len(model.mtp) else "") + ")")
    missing = [u for u in units if u not in dmap]
    if missing:
        raise ValueError(f"--device-map: no device for {_spans(missing)}; name every block, "
                         "e.g. layers.0-20=cuda:0,layers.21-42=cuda:1,mtp.0=cuda:1")
    dmap.setdefault("embed", dmap[units[0]])
    main = [u for u in units if u.startswith("layers.")]
    dmap.setdefault("head", dmap[main[-1]] if main else dmap[units[-1]])
    return dmap


def _split(devices: list[str], model) -> dict[str, str]:
    """Blocks in order over `devices`, each taking about an equal share of the bytes."""
    w, units = weights_of(model), blocks(model)
    sizes = [w.blocks.get(u, 0) + w.experts.get(u, 0) for u in units]
    total, done, out = max(sum(sizes), 1), 0, {}
    for u, n in zip(units, sizes, strict=True):
        # the device whose share holds this block's middle byte
        out[u] = devices[min(len(devices) - 1, (done + n // 2) * len(devices) // total)]
        done += n
    return _complete(out, model)


def _auto(model) -> dict[str, str]:
    if not torch.cuda.is_available():
        return _split(["cpu"], model)
    gpus = [torch.cuda.get_device_properties(i).total_memory
            for i in range(torch.cuda.device_count())]
    p = memplan.plan(weights_of(model), gpus, memplan.available_memory() or 0)
    if not p.fits:
        raise ValueError(f"--device-map auto: {p.detail}")
    return _complete(dict(p.device_map), model)


def _spans(units: list[str]) -> str:
    """['layers.3', 'layers.4', 'mtp.0'] -> 'layers.3-4, mtp.0'."""
    return ", ".join(memplan.spans([(u, "") for u in units]))


def check_device(device: str) -> None:
    """ValueError when this machine has no `device`."""
    try:
        d = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device-map: {device!r} is not a device; write cpu, cuda:0, "
                         "cuda:1, ...") from None
    if d.type == "cpu" or d.type == "meta":
        return
    if d.type != "cuda":
        raise ValueError(f"--device-map: {device!r}: only cpu and cuda devices are supported")
    if not torch.cuda.is_available():
        raise ValueError(f"--device-map: {device!r}, but CUDA is not available on this machine "
                         "(use cpu, or run where a GPU is)")
    if (d.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device-map: {device!r}, but this machine has "
                         f"{torch.cuda.device_count()} GPU(s)")


def device_of(name: str, dmap: dict[str, str]) -> str:
    """Where the parameter `name` goes under `dmap`."""
    parts = name.split(".")
    if parts[0] in ("layers", "mtp"):
        unit = ".".join(parts[:2])
        if f"{unit}{EXPERTS}." in name:
            return dmap.get(f"{unit}{EXPERTS}", dmap[unit])
        return dmap[unit]
    return dmap["embed"] if parts[0] == "embed" else dmap["head"]


def place(model, dmap: dict[str, str]) -> None:
    """Move every parameter, and every plain tensor a layer keeps (RoPE tables), where `dmap`
    says. The forward pass moves activations between blocks (engine.model) and runs routed
    experts where they live apart from their block (engine.offload)."""
    pin = any(torch.device(d).type == "cuda" for d in dmap.values())
    for name, mod in model.named_modules():
        for leaf, p in list(mod._parameters.items()):
            if p is None:
                continue
            full = f"{name}.{leaf}" if name else leaf
            dev = torch.device(device_of(full, dmap))
            if p.device != dev:
                t = p.data.to(dev)
                if pin and dev.type == "cpu":  # host experts feeding a GPU: copy from pinned
                    t = t.pin_memory()
                mod._parameters[leaf] = torch.nn.Parameter(t, requires_grad=False)
        _move_plain(mod, name, dmap)


def _move_plain(mod, name: str, dmap: dict[str, str]) -> None:
    """Tensors kept as plain attributes (not parameters), e.g. Attention.freqs."""
    params = dict(mod.named_parameters(recurse=False))
    if not params:
        return
    first = next(iter(params))
    dev = torch.device(device_of(f"{name}.{first}" if name else first, dmap))
    for attr, v in list(vars(mod).items()):
        if isinstance(v, torch.Tensor) and not isinstance(v, torch.nn.Parameter) \
                and v.device != dev:
            setattr(mod, attr, v.to(dev))


def describe(dmap: dict[str, str]) -> str:
    """One line: 'embed cuda:0; layers.0-20 cuda:0; layers.21-42 cuda:1; experts cpu'."""
    by: dict[str, list[str]] = {}
    for unit, dev in dmap.items():
        if not unit.endswith(EXPERTS) and unit not in ("embed", "head"):
            by.setdefault(dev, []).append(unit)
    host = sorted({d for u, d in dmap.items()
                   if u.endswith(EXPERTS) and d != dmap.get(u.removesuffix(EXPERTS))})
    parts = [f"{_spans(us)} {d}" for d, us in by.items()]
    if host:
        parts.append(f"routed experts {', '.join(host)}")
    return "; ".join(parts)
