"""The sandbox: a stand-in of the guarded stack for `watchdog demo` and integration tests.

Stub services (each its own process on 127.0.0.1) speak the real stack's endpoints and
shapes, traps included; a supervisor with a control API starts and stops them, keeps
the configuration tables and injects faults. Entry points: `python -m watchdog.sandbox`,
`watchdog.sandbox.stack.SandboxStack` and `watchdog.sandbox.control.SandboxControl`.
Nothing here imports the rest of the watchdog.
"""
