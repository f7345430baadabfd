"""Hand-written algorithms in the same op set, run by the same interpreter as the evolved ones.

They are the yardsticks of the figures, and a check on the interpreter: a correct interpreter trains them to
high fitness (tests/test_zero.py). Written as program text, so they also exercise the parser.

- linear-regression: the demo's target, SGD on the squared error (fits the demo's memory: 4 scalars,
  3 vectors, 1 matrix); the learning rate 1/(F+2) is the fastest stable one for N(0, 1) features, F = 4.
- logistic-regression: the same update with a bias; on accuracy tasks the interpreter hands Learn the
  sigmoid of the prediction (the reference's ProbabilityConverter), so s0 - s1 is the log-loss gradient.
- two-layer-nn: F hidden ReLU units (v7 stays zero: max(v2, v7) is the ReLU), trained by backpropagation
  with SGD. Learning rates (0.01-0.5) and init scales (0.1-0.5) were chosen on 30 tasks of the search pairs with
  the mnist-pairs preset's 100 training examples, never on the held-out pairs.
"""

from __future__ import annotations

from mnas.errors import UserError
from mnas.zero.program import Program, parse_program

LINEAR_REGRESSION = """\
def Setup():
  s3 = 0.16666666666666666
def Predict():
  s1 = dot(v0, v1)
def Learn():
  s2 = s0 - s1
  s2 = s2 * s3
  v2 = s2 * v0
  v1 = v1 + v2
"""

LOGISTIC_REGRESSION = """\
def Setup():
  s3 = 0.1
def Predict():
  s1 = dot(v0, v1)
  s1 = s1 + s4
def Learn():
  s2 = s0 - s1
  s2 = s2 * s3
  v2 = s2 * v0
  v1 = v1 + v2
  s4 = s4 + s2
"""

TWO_LAYER_NN = """\
def Setup():
  s3 = 0.1
  m0 = gaussian(0.0, 0.25, (n_features, n_features))
  v1 = gaussian(0.0, 0.25, n_features)
def Predict():
  v2 = dot(m0, v0)
  v3 = maximum(v2, v7)
  s1 = dot(v1, v3)
  s1 = s1 + s4
def Learn():
  s2 = s0 - s1
  s2 = s2 * s3
  v4 = s2 * v1
  v5 = heaviside(v2, 1.0)
  v4 = v4 * v5
  m1 = outer(v4, v0)
  m0 = m0 + m1
  v6 = s2 * v3
  v1 = v1 + v6
  s4 = s4 + s2
"""

BASELINES = {"linear-regression": LINEAR_REGRESSION, "logistic-regression": LOGISTIC_REGRESSION,
             "two-layer-nn": TWO_LAYER_NN}


def baseline(name: str) -> Program:
    if name not in BASELINES:
        raise UserError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    return parse_program(BASELINES[name], f"baseline {name}")[0]
