"""asyncio execution of dataflow graphs."""
