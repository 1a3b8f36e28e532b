"""Adapters to outside services (WeChat, WeChat Pay, ...); each has a fake that speaks the real protocol."""
