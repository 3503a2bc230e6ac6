"""Presentation of DataFrames: matplotlib figures (throughput, roofline, benchmark plots), the self-contained HTML
report and the ipywidgets explorer.  Reads the layers below; nothing below reads it.
"""
