from tfdeploy.cli.commands import main

main()
