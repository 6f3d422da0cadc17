"""`pytest autograder --submission PATH`: see autograder/frontends/pytest_plugin.py."""
pytest_plugins = ["autograder.frontends.pytest_plugin"]
