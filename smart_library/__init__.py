"""A stand-in for the smart library: its read-only HTTP API over ``public.fragrances``."""
