"""The business calendar: opening hours, public holidays and overrides (`[calendar]`)."""
