# interning kernels: placeholder until implemented
class KeyInterner:
    pass
