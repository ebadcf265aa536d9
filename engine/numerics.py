"""The two numeric modes.

`official` reproduces the release's quantization-aware rounding (DeepSeek's inference code):
FP8 round trip of activations before every FP8/FP4 GEMM, of the KV nope dims, Hadamard + FP4
round trip of the indexer q/k, routing weight applied before W2, no clamp on the shared
expert. `reference` does no simulated rounding and follows transformers' DeepseekV4 exactly
(routing weight after W2, clamped shared expert)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Numerics:
    act_fp8: bool = False        # FP8 e4m3 1×128 round trip of activations into FP8/FP4 GEMMs
    kv_fp8: bool = False         # FP8 round trip (64-wide blocks) of KV dims 0..d-rope
    indexer_fp4: bool = False    # Hadamard + MXFP4 round trip of indexer q and keys
    weight_before_w2: bool = False  # routed expert: scale the hidden by its weight before W2
    shared_clamp: bool = True    # transformers clamps the shared expert's SwiGLU too

    @classmethod
    def of(cls, mode: str) -> Numerics:
        if mode == "reference":
            return cls()
        if mode == "official":
            return cls(act_fp8=True, kv_fp8=True, indexer_fp4=True, weight_before_w2=True,
                       shared_clamp=False)
        raise ValueError(f"mode: unknown numeric mode {mode!r}; use 'reference' or 'official'")

    def set(self, other: Numerics) -> None:
        """Switch in place; every layer holds this same object."""
        self.__dict__.update(other.__dict__)
