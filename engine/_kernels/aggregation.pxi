# aggregation kernels: placeholder until implemented
class WindowAggTable:
    pass
