"""The partner's tickets (issue 10 §2): signed webhook, IMAP mailbox, `nohold tickets`."""
