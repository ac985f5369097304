# windows kernels: placeholder until implemented
def tumbling_starts(ts, size, offset=0):
    raise NotImplementedError("tumbling_starts")

def sliding_windows(ts, size, slide, offset=0):
    raise NotImplementedError("sliding_windows")
