"""The learned denoiser (the ``mamba`` pipeline stage), in one folder:

    features/       streaming per-event features (PFD quantities, time surfaces, flicker)
    model.py        the stateful Mamba2 network (torch; ``ssd.py``: its scan)
    cpu_runner.py   the numba recurrent path that runs it on a CPU, message by message
    gpu_runner.py   the torch path with mamba_ssm's scan on CUDA
    stage.py        the pipeline stage: features -> runner -> keep mask
    checkpoint.py   the deployable checkpoint (weights + model and feature config)
    data.py         labelled archives -> per-event features and classes for training
    training.py     ``eventfx train`` with ``kind: denoiser``
"""
