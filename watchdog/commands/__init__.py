"""The commands' wiring: one module per `watchdog` command, above every other layer.

`cli.py` parses arguments and calls in here; these modules build the daemon,
the API and the backends from the settings. Nothing below (engine, api, store,
actions) imports from here: `.importlinter`'s layers contract checks it.
"""
