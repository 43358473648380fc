"""One definition per figure and per verdict, over results: every output calls these.

`thresholds` holds the margins every rule and renderer compares against; `measures` derives figures from a
result (noise, input-bound share, speed-up over eager, XLA's payback); `decisions` says whether one result
beats another. Nothing here imports TensorFlow or a renderer.
"""
