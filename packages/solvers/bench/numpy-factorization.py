# numpy's Cholesky + inverse (LAPACK potrf, then getrf/getri through numpy.linalg.inv) of the damped float64
# Hessian that bitsmith factors, for the solvers benchmark. Thread count: set OPENBLAS_NUM_THREADS when calling.
# Usage: python3 numpy-factorization.py H.f64 COLUMNS REPEATS
import json
import sys
import time

import numpy as np

path, columns, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
h = np.fromfile(path, dtype=np.float64).reshape(columns, columns)
best = {'cholesky': float('inf'), 'inverse': float('inf')}
for _ in range(repeats):
    t = time.perf_counter()
    np.linalg.cholesky(h)
    t1 = time.perf_counter()
    np.linalg.inv(h)
    t2 = time.perf_counter()
    best['cholesky'] = min(best['cholesky'], t1 - t)
    best['inverse'] = min(best['inverse'], t2 - t1)
print(json.dumps({'numpy': np.__version__, 'cholesky': best['cholesky'], 'inverse': best['inverse'], 'total': best['cholesky'] + best['inverse']}))
