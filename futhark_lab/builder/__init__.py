"""Source to library: finding futhark and the C compiler, the content-addressed build cache, running futhark and
cc, patches to the generated code, the manifest and the C declarations read from it.  Imports nothing above it.
"""
