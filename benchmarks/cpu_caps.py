"""Run the search libraries as on a narrower CPU: the environment caps per class, and a check that they took.

Search touches three kinds of vector code, each with its own switch, read once when the library loads
(so the caps go into a child process's environment, never into a running one):

- FAISS 1.15 wheels ship one library with dynamic dispatch: ``FAISS_SIMD_LEVEL=AVX2`` caps it
  (``FAISS_OPT_LEVEL`` only chooses between separate per-ISA libraries, which these wheels no longer ship).
- NumPy's own ufunc loops: ``NPY_DISABLE_CPU_FEATURES`` removes the AVX-512 dispatch targets.
- OpenBLAS (NumPy's matrix products, and the copy bundled with FAISS): ``OPENBLAS_CORETYPE=Haswell``.
- PyTorch/oneDNN/MKL are capped too (``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``,
  ``MKL_ENABLE_INSTRUCTIONS``), though search runs none of their kernels.

``confirm_caps`` reads back what each library actually dispatches to, for the results file.
Memory bandwidth and core speed stay those of this machine: the caps emulate the instruction set only.
"""

from __future__ import annotations

from typing import Any

# NumPy 2.4 x86 wheels dispatch to X86_V3 (AVX2 + FMA), X86_V4 (AVX-512 F/CD/BW/DQ/VL), AVX512_ICL and AVX512_SPR;
# removing the last three leaves AVX2 (naming a feature it has no kernels for only draws a warning).
AVX512_TARGETS = "X86_V4 AVX512_ICL AVX512_SPR"
CLASS_CAPS: dict[str, dict[str, str]] = {
    "AVX2": {
        "FAISS_SIMD_LEVEL": "AVX2",
        "FAISS_OPT_LEVEL": "avx2",
        "NPY_DISABLE_CPU_FEATURES": AVX512_TARGETS,
        "OPENBLAS_CORETYPE": "Haswell",
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
    "native": {},
}


def confirm_caps() -> dict[str, Any]:
    """What FAISS, NumPy and each loaded OpenBLAS dispatch to in this process (after the caps)."""
    import faiss
    import numpy as np
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    from threadpoolctl import threadpool_info

    np.ones(4) @ np.ones(4)  # loads NumPy's BLAS, so threadpoolctl sees it
    return {
        "faiss_simd_level": faiss.SIMDConfig.get_level_name(),
        "faiss_compile_options": faiss.get_compile_options().strip(),
        "numpy_dispatch": [target for target in __cpu_dispatch__ if __cpu_features__.get(target)],
        "blas": {info["prefix"]: info.get("architecture") for info in threadpool_info() if info["user_api"] == "blas"},
    }
