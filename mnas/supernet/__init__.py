"""One-shot weight sharing (ENAS / TuNAS style): a supernet whose paths are the children of a search space.

    model.py      the block-wise supernet (`Supernet(space, num_classes)`, mnasnet / mixnet; a sample tensor selects
                  the path) and `make_supernet(space, ...)`, which picks the supernet of a space
    layerwise.py  the layer-wise supernet (`LayerwiseSupernet`: mobilenetv3, ofa-mbv3)
    evaluator.py  `SupernetEvaluator`: the `supernet` accuracy evaluator of `mnas search`
    rank.py       stand-alone retraining of chosen children and the Kendall tau of one-shot vs stand-alone
    pick.py       final-pick rules of a one-shot search: best reward, policy argmax (TuNAS), re-score (ENAS)

See docs/supernet.md. Importing this package does not import TF; its modules do.
"""
