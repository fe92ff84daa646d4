# IPython startup file of the kernels that `make test` starts with IPYTHONDIR=tests/audit_kernel (see
# tests/device_audit.py): with LESSONS_DEVICE_AUDIT=1 every cell of the notebook runs under the device audit.
# It leaves no name in the notebook's namespace. IPython only warns when a startup file fails, which would
# run the chapter unaudited, so a failure here ends the kernel instead and the notebook run fails.
def _lessons_device_audit():
    import os
    import sys
    import traceback

    if os.environ.get("LESSONS_DEVICE_AUDIT") != "1":
        return
    try:
        sys.path.insert(0, os.path.dirname(os.path.abspath(os.environ["IPYTHONDIR"])))  # tests/
        try:
            import device_audit
        finally:
            sys.path.pop(0)
        device_audit.activate()
    except BaseException:
        traceback.print_exc()
        print("the device audit could not start: ending the kernel", file=sys.stderr, flush=True)
        os._exit(70)


_lessons_device_audit()
del _lessons_device_audit
