"""Triton kernels for the NTM memory ops (installed as ``ntm_fast._kernels``)."""
