"""The analysis stage: what measured results mean. The advisor's suggestions (`advisor`) and `compare`'s
verdicts between two runs, over results and the figures `tfperf.figures` defines; no TensorFlow, no rendering
(the report stage renders both)."""
