DROP TABLE console_forms;
