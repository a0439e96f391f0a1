"""Drills: rehearse a runbook fault on a drill target and record how the daemon coped."""
