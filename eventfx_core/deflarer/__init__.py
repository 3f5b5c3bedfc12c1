"""The voxel 3D-UNet deflarer (the ``deflare`` pipeline stage): events -> voxel grid -> residual
3D U-Net -> keep decisions.

After E-Deflare (Han et al., "Learning to Remove Lens Flare in Event Camera", arXiv
2512.09016): 20 ms windows binned into 8 time bins and 4x4-pixel cells, a residual 3D U-Net
predicts the clean grid, and our decode keeps the input events whose cell the network did not
empty, or (checkpoints with a flare-mask head) whose cell's predicted flare share is low.
``eventfx bench --deflare`` measures its speed (about 10 ms per 20 ms window at 346x260 on one
CPU thread).

    gate.py         where a light source can make flare (the U-Net runs only there)
    window.py       20 ms windows aligned to absolute time
    voxel.py        events -> voxel grid (and back)
    model.py        the residual 3D U-Net (torch)
    decode.py       predicted grid -> keep decision per input event
    stage.py        the pipeline stage: gate -> windows -> voxels -> model -> decode
    checkpoint.py   the deployable checkpoint (weights + model and voxel config)
    data.py         labelled archives for training; metrics.py: flare-removal scores
    training.py     ``eventfx train`` with ``kind: deflarer``
"""
