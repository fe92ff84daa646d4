# Kernels started with IPYTHONDIR=tests/audit_kernel (make test's notebook run) keep no history file, so
# parallel kernels share this directory without writing to it.
c = get_config()  # noqa: F821
c.HistoryManager.enabled = False
