"""The pipeline of the multi-node tests: steps pinned to nodes by Ray custom resources.

    make_data (node_a) -> split (node_b) -> fit_torch (head; 2 workers STRICT_SPREAD)
                                          -> fit_xgb (node_a; 2 workers)
                                          -> predict (node_a; BatchPredictor actors on node_b)
                                          -> evaluate

Each step records where it ran (the node id in a column or in the checkpoint), so the
tests check placement from what the store holds.
"""

from __future__ import annotations

import airflowdsl as af

FEATURES = ["x0", "x1", "x2", "x3"]
LABEL = "y"


def here() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


@af.ingest(resources={"node_a": 0.01})
def make_data(rows: int = 400) -> af.Dataset:
    import numpy as np
    import ray.data

    rng = np.random.default_rng(0)
    node = here()
    print(f"make_data: {rows} rows on node {node}")  # `airflowdsl logs RUN make_data`
    items = []
    for _ in range(rows):
        x = rng.normal(size=len(FEATURES))
        items.append({**{f: float(v) for f, v in zip(FEATURES, x, strict=True)},
                      LABEL: int(x[0] + 0.5 * x[1] > 0), "made_on": node})
    return ray.data.from_items(items)  # 400 rows: once 200 blocks, 200 write tasks


@af.preprocess(resources={"node_b": 0.01})
def split(ds: af.Dataset) -> tuple[af.Dataset, af.Dataset]:
    node = here()
    tagged = ds.map_batches(lambda b: {**b, "split_on": [node] * len(b[LABEL])},
                            batch_format="pandas")
    train, test = tagged.train_test_split(test_size=0.25, seed=0)
    return train, test


def torch_loop(config: dict) -> None:
    import torch
    import torch.distributed as dist
    from torch import nn

    from airflowdsl.air import Checkpoint, session
    from airflowdsl.train.torch import prepare_model

    nodes: list[str | None] = [None] * session.get_world_size()
    dist.all_gather_object(nodes, here())
    print(f"rank {session.get_world_rank()} on node {here()}", flush=True)  # in the step's log
    torch.manual_seed(0)
    model = prepare_model(nn.Linear(len(FEATURES), 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    shard = session.get_dataset_shard("train")
    for epoch in range(config["epochs"]):
        for batch in shard.iter_torch_batches(batch_size=64, dtypes=torch.float32):
            x = torch.stack([batch[c] for c in FEATURES], dim=1)
            loss = nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(1),
                                                                  batch[LABEL])
            opt.zero_grad()
            loss.backward()
            opt.step()
        ckpt = None
        if session.get_world_rank() == 0:
            state = {k: v.cpu() for k, v in model.state_dict().items()}
            ckpt = Checkpoint.from_dict({"model": state, "nodes": nodes, "epoch": epoch})
        session.report({"epoch": epoch, "loss": float(loss)}, checkpoint=ckpt)


@af.train(resources={"head": 0.01})
def fit_torch(train: af.Dataset, epochs: int = 2) -> af.Checkpoint:
    from airflowdsl.air import RunConfig, ScalingConfig
    from airflowdsl.train.torch import TorchTrainer

    result = TorchTrainer(
        torch_loop, train_loop_config={"epochs": epochs},
        scaling_config=ScalingConfig(num_workers=2, placement_strategy="STRICT_SPREAD"),
        run_config=RunConfig(name="spread_torch", verbose=0),
        datasets={"train": train.select_columns([*FEATURES, LABEL])},
    ).fit()
    assert result.checkpoint is not None
    return result.checkpoint


@af.train(resources={"node_a": 0.01})
def fit_xgb(train: af.Dataset, valid: af.Dataset) -> af.Checkpoint:
    from airflowdsl.air import RunConfig, ScalingConfig
    from airflowdsl.train.xgboost import XGBoostTrainer

    cols = [*FEATURES, LABEL]
    result = XGBoostTrainer(
        label_column=LABEL, num_boost_round=5,
        params={"objective": "binary:logistic", "max_depth": 2, "eval_metric": "logloss"},
        datasets={"train": train.select_columns(cols), "valid": valid.select_columns(cols)},
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(name="spread_xgb", verbose=0),
    ).fit()
    assert result.checkpoint is not None
    return result.checkpoint


@af.predict(resources={"node_a": 0.01})
def predict(ckpt: af.Checkpoint, test: af.Dataset) -> af.Dataset:
    """Scored on an actor pool pinned to node_b (not in this step's process)."""
    import shutil

    from airflowdsl.train.batch_predictor import BatchPredictor
    from airflowdsl.train.xgboost import XGBoostPredictor

    # this node's copy of the checkpoint, gone, as it is for node_b on separate machines:
    # the actors load the checkpoint from the store, not from this path
    shutil.rmtree(ckpt.path)
    return BatchPredictor.from_checkpoint(ckpt, XGBoostPredictor).predict(
        test, feature_columns=FEATURES, keep_columns=[LABEL], fast_path=False,
        min_scoring_workers=1, max_scoring_workers=1, num_cpus_per_worker=0.5,
        ray_remote_args={"resources": {"node_b": 0.01}})


@af.predict
def evaluate(scored: af.Dataset, torch_ckpt: af.Checkpoint) -> dict[str, float]:
    frame = scored.to_pandas()
    nodes = torch_ckpt.to_dict()["nodes"]
    hits = (frame["predictions"].to_numpy() > 0.5) == frame[LABEL].to_numpy()
    return {"mean_prediction": float(frame["predictions"].mean()),
            "accuracy": float(hits.mean()),
            "n_test": float(len(frame)), "torch_nodes": float(len(set(nodes)))}


@af.pipeline
def spread(rows: int = 400, epochs: int = 2):
    train, test = split(make_data(rows=rows))
    torch_ckpt = fit_torch(train, epochs=epochs)
    return evaluate(predict(fit_xgb(train, test), test), torch_ckpt)


def slow_loop(config: dict) -> None:
    """Six 1-second epochs, a checkpoint after each; resumes after the last one."""
    import time

    from airflowdsl.air import Checkpoint, session

    start = session.get_checkpoint()
    state = start.to_dict() if start is not None else {"epoch": -1, "resumed_from": -1,
                                                       "restarts": 0}
    resumed = state["epoch"] + 1 if start is not None else 0
    restarts = state["restarts"] + (1 if start is not None else 0)
    for epoch in range(resumed, config["epochs"]):
        time.sleep(1.0)
        ckpt = None
        if session.get_world_rank() == 0:
            ckpt = Checkpoint.from_dict({"epoch": epoch, "restarts": restarts,
                                         "resumed_from": max(resumed, state["resumed_from"])})
        session.report({"epoch": epoch}, checkpoint=ckpt)


@af.train(resources={"head": 0.01})
def fit_slow(epochs: int = 6) -> af.Checkpoint:
    """No storage_path: checkpoints go to ``<run store>/train`` (the bucket), uploaded by
    rank 0 from its node; after a lost node the group resumes from the bucket."""
    from airflowdsl.air import FailureConfig, RunConfig, ScalingConfig
    from airflowdsl.train.torch import TorchTrainer

    result = TorchTrainer(
        slow_loop, train_loop_config={"epochs": epochs},
        scaling_config=ScalingConfig(num_workers=2, placement_strategy="SPREAD"),
        run_config=RunConfig(name="resilient", verbose=0,
                             failure_config=FailureConfig(max_failures=1)),
    ).fit()
    assert result.checkpoint is not None
    return result.checkpoint


@af.predict
def summarize(ckpt: af.Checkpoint) -> dict[str, float]:
    state = ckpt.to_dict()
    return {"last_epoch": float(state["epoch"]), "resumed_from": float(state["resumed_from"]),
            "restarts": float(state["restarts"])}


@af.pipeline
def resilient(epochs: int = 6):
    return summarize(fit_slow(epochs=epochs))
