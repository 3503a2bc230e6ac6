"""Loaded programs: the binding of built libraries (C backends) and generated modules (Python backends) behind one
interface, device-resident values, the guards around calls, device drivers, and the probes and diagnoses that say
which backends run here.  Imports ``builder`` below it; nothing above.
"""
