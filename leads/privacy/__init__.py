"""What leads does for the people it holds data about: erasure on request, the subject
export, and the commands and the staff API route for them. Retention itself (what is
removed when, daily) is in :mod:`leads.storage.retention`, so the dispatcher can run it."""
