"""Chat policy in the core: who gets which card or notice, by the capabilities each chat port declares."""
