"""AutoML-Zero (Real, Liang, So, Le, ICML 2020): evolve whole learning algorithms from basic math ops.

A program is three component functions, Setup / Predict / Learn, over scalar, vector and matrix memory, written
with the 65 ops of the reference's `instruction.proto`. Regularized evolution with functional-equivalence
checking searches them; an interpreter compiled once with numba runs them.

- ops: the op table (names, ids, argument kinds, readable forms)
- program: programs, their text form and parser
- kernels: the numba interpreter, FEC cache, mutation and evolution loop
- numpy_interp: a numpy interpreter batched over tasks (the measured alternative, and a test oracle)
- tasks: linear regression tasks, projected binary MNIST pairs
- population, search: populations, the search and demo loops (resumable, islands on an executor)
- store: the SQLite run store; baselines: hand-written programs in the same op set

No TensorFlow anywhere here. See docs/zero.md.
"""
