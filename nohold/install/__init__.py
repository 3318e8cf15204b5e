"""`nohold install` / `nohold uninstall`: the file I/O around the pure plan
(nohold/decisions/install.py): reading the admin's tree, backups, the manifest that
makes uninstall exact, atomic writes, and telling Asterisk to re-read its files."""
