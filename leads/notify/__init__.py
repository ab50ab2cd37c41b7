"""The notification side: the outbox, what a notification says, the channels that carry it,
and the dispatcher that delivers it."""
