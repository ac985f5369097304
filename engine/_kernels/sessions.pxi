# sessions kernels: placeholder until implemented
class SessionTable:
    pass
