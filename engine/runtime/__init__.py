"""asyncio execution of dataflow graphs.

* `plan`: compile a `Dataflow` into wiring, key domains and fused chains (``flow.describe()``);
* `executor`: one run: source tasks feeding a bounded queue, the driver pushing batches through the
  operators, end of input, cancellation, the checkpoint seam;
* `operators`: the operators by family (`sources`, `stateless`, `windowing`, `joins`);
* `extract`: reading fields out of batches (columns once per batch, callables once per record);
* `keys`: key domains shared by the steps that must agree on key ids;
* `metrics`: per-step counters; `cli`: ``engine run``.
"""
