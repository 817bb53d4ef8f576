"""A lean SSL trainer, by file:

    engine.py      train(): epochs of steps; train_one_epoch, end_of_epoch
    run.py         a run set up and resumed: ranks, loader, method, optimizer, logs
    methods/       the twelve methods, one file per paper; base.py is their contract
    evaluate/      kNN and linear probes, and the backbone they read
    config.py      TrainConfig and its YAML; checkpoint.py, metrics.py, optimizers.py,
    schedules.py, devices.py, nets.py: what those names say
"""
