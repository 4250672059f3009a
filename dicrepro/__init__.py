"""dicrepro: reproducible DICModel (domain-specific image captioning for ICT)."""
__version__ = "0.1.0"
