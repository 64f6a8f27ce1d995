"""The toolkit's command layer: one base error, one logging setup, shared options, and the `dfd` command group."""
