# watermarks kernels: placeholder until implemented
class WatermarkTracker:
    pass

def late_mask(watermarks, window_ends, lateness):
    raise NotImplementedError("late_mask")

def combine_watermarks(watermarks, idle):
    raise NotImplementedError("combine_watermarks")
