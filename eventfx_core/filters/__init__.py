"""Classic event filters, each an event stage (``eventfx_core.stages``) with a numba kernel and a
per-event Python reference in ``reference.py``:

    hot_pixel   HotPixelFilter                  pixels firing above a rate are muted
    refractory  RefractoryFilter                at most one event per pixel per refractory period
    baf         BackgroundActivityFilter        keep events supported by a recent neighbour
    stcf        SpatioTemporalCorrelationFilter keep events with at least k recent neighbours
"""
