"""cryptocloud: cryptographic computing as a cloud service."""
