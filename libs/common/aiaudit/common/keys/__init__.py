"""Envelope encryption of stored content (ARCHITECTURE promise 3).

Each data subject (a tenant's ``actor.user_id``; events without one share the
tenant's subject ``""``) has a data key (DEK) of its own. Content and salt are
stored sealed under it (:mod:`.seal`); the DEK is stored only wrapped by a key
encryption key (KEK) that stays outside the database: a local key file in the
embedded mode (:mod:`.kek`), a Vault / OpenBao Transit key in production
(:mod:`.transit`). Erasing a subject deletes its content and its DEK.
"""
