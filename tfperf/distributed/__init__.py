"""Training under tf.distribute: one device, several devices of one machine (MirroredStrategy), several
workers (MultiWorkerMirroredStrategy), measured with a custom training loop.

Why a custom loop: Keras 3's `model.fit` fails under MultiWorkerMirroredStrategy ("Attempt to convert a value
(PerReplica...)"), and a hand-written loop is what the tf.distribute guide teaches anyway: model and optimizer
built under `strategy.scope()`, the dataset of *global* batches given to `experimental_distribute_dataset`,
and a step of `strategy.run(replica_fn)` + `strategy.reduce(SUM)` over losses averaged with
`tf.nn.compute_average_loss(..., global_batch_size)`.

`batch_size` is the per-replica batch; the global batch is per-replica × replicas. Scaling efficiency is
throughput with N replicas / (N × throughput of one replica at the same per-replica batch), both measured in
the same process and the same run (a one-device baseline pass runs first).

Process rules (TensorFlow's, not ours):
- Logical CPU devices must be configured before TensorFlow initializes its devices, and a
  MultiWorkerMirroredStrategy must be created before the eager context starts: `setup.configure_process` runs
  at worker-process start, before anything touches a device.
- A multi-worker case either launches N local worker processes (`cluster`, each runs `job.main` with its own
  TF_CONFIG), or, when TF_CONFIG is already set, this process joins that cluster as the worker TF_CONFIG
  names.

Modules, in the order a job uses them:
    setup         TF_CONFIG, process set-up before TensorFlow starts, the strategy
    passes        one strategy's training step, built, warmed up and timed (Pass, PassRunner)
    coordination  the barrier every worker meets at
    faults        fault injection for the failure-handling tests
    trace         the profiled pass (worker 0's trace with several workers) and the all-reduce share
    measure       one job: the one-replica baseline, the distributed pass, the read-outs
    job           a launched cluster worker's entry point, `main`

The local multi-worker cluster's supervisor, and `run_distributed_job` (what the case worker calls), are
tfperf/run/cluster.py: starting worker processes is the run stage's job.
"""
