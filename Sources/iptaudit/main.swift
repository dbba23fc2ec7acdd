import IptauditCommands

IptauditCommand.main()
