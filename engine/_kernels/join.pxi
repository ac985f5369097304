# join kernels: placeholder until implemented
class IntervalJoinBuffers:
    pass
