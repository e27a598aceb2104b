"""The command surface: the `lakehouse` command and the demo, above everything they drive
(orchestration, the streaming sidecars, the lake). Nothing below imports from here."""
