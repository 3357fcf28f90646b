"""The installed package on a CPU without AVX-512, run under valgrind.

Valgrind's emulated CPU has AVX2 but no AVX-512: importing, building, searching, saving
and loading must not execute an instruction the CPU lacks (a SIGILL would end the run).
One wheel serves every x86-64 CPU, so the run-time dispatch is all that stands between a
user and that crash.
"""

import numpy as np

import annx

isas = annx.available_isas()
assert "avx512" not in isas and "avx512_icl" not in isas, isas
g = np.random.default_rng(0)
x = g.standard_normal((600, 40)).astype(np.float32)
for spec in ["Flat", "HNSW8", "IVF8,PQ10x4fs", "Flat,SQ8", "Flat,F16", "Flat,BEBR2"]:
    for metric in ["l2", "ip", "cos"]:
        ix = annx.index_factory(40, spec, metric)
        if not ix.is_trained:
            ix.train(x)
        ix.add(x)
        ix.search(x[:40], 5)
        annx.from_bytes(ix.to_bytes()).search(x[:2], 5)
mt = annx.MultiTenantIndex(40, "l2")
mt.train(x)
mt.add(x, tenants=[[0]] * len(x))
mt.search(x[:20], 5, tenant=0)
print("ok on", isas)
