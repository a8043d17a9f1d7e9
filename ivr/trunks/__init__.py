"""Carrier trunks: trunks.yaml (shape, validation, model) rendered into PJSIP sections.

Without a trunks file the PBX keeps its single-address trunk (IVR_TRUNK_MATCH) and the
clinician gateway (IVR_GATEWAY_HOST); with one, every trunk, transport, credential and
role comes from the file. See docs/carrier.md.
"""
