"""ctypes wrappers for the Linux system calls that Python 3.11's os module lacks."""
