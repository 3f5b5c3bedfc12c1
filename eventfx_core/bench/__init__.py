"""Every benchmark of eventfx, reached through ``eventfx bench`` (``eventfx_core/cli/bench.py``):

    stages.py          events/s and per-message latency of the features, every stage, the whole
                       pipeline and dv-processing's BAF (``eventfx bench [--file F]``)
    codecs.py          decode/encode throughput of every encoding (``eventfx bench --codecs``)
    deflare.py         the deflare stage per 20 ms window (``eventfx bench --deflare``)
    convert_memory.py  peak memory of ``eventfx convert`` on a multi-GB bag
                       (``eventfx bench --convert-memory``)

The node's end-to-end throughput over DDS needs rclpy and lives in ``eventfx_ros``:
``python -m eventfx_ros.throughput``.
"""
