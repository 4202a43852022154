from forecaster.cli import entry

entry()
